{{ config(tags=['daily']) }}

{#-
  Orders of every channel in one shape: the earliest delivery of each order with the (net)
  units of its deduplicated lines.
-#}
with first_delivered as (
    {{ first_delivery(ref('stg_cleaned__orders'), ['order_id'], ['source_file']) }}
),

units as (
    select
        order_id,
        sum(quantity) as n_units
    from {{ ref('int_order_lines__first_delivery') }}
    group by order_id
)

select
    first_delivered.order_id,
    first_delivered.channel,
    first_delivered.customer_key,
    first_delivered.ordered_at,
    first_delivered.order_date,
    first_delivered.store_code,
    first_delivered.n_lines,
    cast(coalesce(units.n_units, 0) as {{ dbt.type_bigint() }}) as n_units,
    first_delivered.is_return,
    first_delivered.gross_amount,
    first_delivered.returns_amount,
    first_delivered.order_total,
    first_delivered.has_promo,
    first_delivered.partition_date
from first_delivered
left join units
    on units.order_id = first_delivered.order_id
