-- depends_on: {{ ref('stg_cleaned__orders') }}
-- depends_on: {{ ref('stg_cleaned__order_lines') }}
-- depends_on: {{ ref('stg_cleaned__interactions') }}
-- depends_on: {{ ref('int_order_lines__first_delivery') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='activity_date',
        tags=['daily'],
    )
}}

{#-
  An incremental run recomputes every day the delivery window has orders, order lines (they
  change an order's units) or interactions for (late rows carry earlier days), and the days of
  the returns naming an order the window delivers (a return without a customer of its own is
  attributed to its original order's customer, which may arrive after the return), from all
  deliveries, and replaces those days.
-#}
with activity as (
    select * from {{ ref('int_customer_activity__daily') }}
)

{% if is_incremental() %}
, touched_days as (
    select order_date as activity_date
    from {{ ref('stg_cleaned__orders') }}
    where {{ in_delivery_window('partition_date') }}
    union
    select order_date as activity_date
    from {{ ref('stg_cleaned__order_lines') }}
    where {{ in_delivery_window('partition_date') }}
    union
    select interaction_date as activity_date
    from {{ ref('stg_cleaned__interactions') }}
    where {{ in_delivery_window('partition_date') }}
    union
    select returned.order_date as activity_date
    from {{ ref('int_order_lines__first_delivery') }} as returned
    where returned.is_return
      and exists (
          select 1
          from {{ ref('stg_cleaned__orders') }} as originals
          where originals.order_id = returned.original_order_id
            and {{ in_delivery_window('originals.partition_date') }}
      )
)
{% endif %}

select
    activity.customer_key,
    activity.activity_date,
    activity.n_orders,
    activity.n_units,
    cast(activity.revenue as double precision) as revenue,
    {%- for channel in var('channels') %}
    activity.{{ channel }}_orders,
    {%- endfor %}
    activity.n_tickets,
    activity.n_sessions,
    activity.pages_viewed,
    activity.product_views
from activity
{% if is_incremental() %}
inner join touched_days
    on touched_days.activity_date = activity.activity_date
{% endif %}
