-- depends_on: {{ ref('stg_cleaned__order_lines') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='delivery_window',
        unique_key=['order_id', 'line_number'],
        tags=['daily'],
    )
}}

{#-
  An incremental run recomputes every line the delivery window touches: lines delivered in the
  window, and lines this table holds from the window (a corrected re-delivery may have moved or
  dropped them). Each keeps its earliest delivery over all partitions.
-#}
with lines as (
    select * from {{ ref('int_order_lines__first_delivery') }}
)

{% if is_incremental() %}
, touched as (
    select order_id, line_number
    from {{ ref('stg_cleaned__order_lines') }}
    where {{ in_delivery_window('partition_date') }}
    union
    select order_id, line_number
    from {{ this }}
    where {{ in_delivery_window('partition_date') }}
)
{% endif %}

select
    lines.order_id,
    lines.line_number,
    lines.channel,
    lines.customer_key,
    lines.ordered_at,
    lines.order_date,
    lines.sku,
    lines.line_kind,
    lines.is_return,
    lines.original_order_id,
    lines.quantity,
    cast(lines.unit_price as double precision) as unit_price,
    cast(lines.line_amount as double precision) as line_amount,
    lines.currency,
    cast(lines.line_amount_source as double precision) as line_amount_source,
    lines.is_promo,
    lines.partition_date
from lines
{% if is_incremental() %}
inner join touched
    on touched.order_id = lines.order_id
   and touched.line_number = lines.line_number
{% endif %}
