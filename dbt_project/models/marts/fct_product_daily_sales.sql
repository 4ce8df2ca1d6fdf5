-- depends_on: {{ ref('stg_cleaned__order_lines') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='sales_date',
        tags=['daily'],
    )
}}

{#-
  Sales days are order days; a delivery can carry late lines of earlier days. An incremental run
  recomputes, from all lines, every day the delivery window has lines for, and replaces those days.
-#}
with lines as (
    select * from {{ ref('fct_order_lines') }}
)

{% if is_incremental() %}
, touched_days as (
    select distinct order_date
    from {{ ref('stg_cleaned__order_lines') }}
    where {{ in_delivery_window('partition_date') }}
)
{% endif %}

, daily as (
    select
        lines.sku,
        lines.order_date as sales_date,
        sum(lines.quantity) as units,
        -- money is summed as exact decimals, so both engines agree to the cent
        sum(cast(lines.line_amount as {{ dbt.type_numeric() }})) as revenue,
        count(distinct lines.order_id) as n_orders,
        sum(case when lines.is_promo then lines.quantity else 0 end) as promo_units
    from lines
    {% if is_incremental() %}
    inner join touched_days
        on touched_days.order_date = lines.order_date
    {% endif %}
    group by lines.sku, lines.order_date
)

select
    sku,
    sales_date,
    cast(units as {{ dbt.type_bigint() }}) as units,
    cast(revenue as double precision) as revenue,
    cast(n_orders as {{ dbt.type_bigint() }}) as n_orders,
    cast(revenue as double precision) / units as avg_unit_price,
    cast(promo_units as double precision) / units as promo_share
from daily
