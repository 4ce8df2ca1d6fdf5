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
  Merchandise only (postage, fees and other declared non-product lines are left out); returns
  count against the day they were booked, so units and revenue are net.
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
        sum(case when lines.is_return then -lines.quantity else 0 end) as units_returned,
        -- money is summed as exact decimals, so both engines agree to the cent
        sum(cast(lines.line_amount as {{ dbt.type_numeric() }})) as revenue,
        sum(case when lines.is_return then 0 else cast(lines.line_amount as {{ dbt.type_numeric() }}) end) as gross_revenue,
        count(distinct lines.order_id) as n_orders,
        sum(case when lines.is_return then 0 else lines.quantity end) as units_sold,
        sum(case when lines.is_promo and not lines.is_return then lines.quantity else 0 end) as promo_units
    from lines
    {% if is_incremental() %}
    inner join touched_days
        on touched_days.order_date = lines.order_date
    {% endif %}
    where lines.line_kind = 'product'
    group by lines.sku, lines.order_date
)

select
    sku,
    sales_date,
    cast(units as {{ dbt.type_bigint() }}) as units,
    cast(units_returned as {{ dbt.type_bigint() }}) as units_returned,
    cast(revenue as double precision) as revenue,
    cast(n_orders as {{ dbt.type_bigint() }}) as n_orders,
    -- the price of what was sold; null on a day with returns only
    case when units_sold > 0 then cast(gross_revenue as double precision) / units_sold end as avg_unit_price,
    case when units_sold > 0 then cast(promo_units as double precision) / units_sold else 0 end as promo_share
from daily
