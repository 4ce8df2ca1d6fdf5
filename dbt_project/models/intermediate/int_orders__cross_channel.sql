{{ config(tags=['daily']) }}

{#-
  Orders of every channel in one shape: the header (channel, customer, order time, store) of
  each order's earliest delivery, and everything derived from lines (n_lines, n_units, amounts,
  is_return, has_promo) over its deduplicated lines of every delivery. Each delivery's order row
  aggregates only that day's lines: an order whose line arrives a day late has an order row per
  day, and the earliest alone would miss the late line. Money is summed as exact decimals.
-#}
with first_delivered as (
    {{ first_delivery(ref('stg_cleaned__orders'), ['order_id'], ['source_file']) }}
),

from_lines as (
    select
        order_id,
        count(*) as n_lines,
        sum(quantity) as n_units,
        min(case when is_return then 1 else 0 end) as all_returns,
        max(case when is_promo then 1 else 0 end) as any_promo,
        sum(case when is_return then 0 else cast(line_amount as {{ dbt.type_numeric() }}) end) as gross_amount,
        sum(case when is_return then cast(line_amount as {{ dbt.type_numeric() }}) else 0 end) as returns_amount,
        sum(cast(line_amount as {{ dbt.type_numeric() }})) as order_total
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
    -- an order row always has lines (cleaning derives it from them); 0 if none survived
    cast(coalesce(from_lines.n_lines, 0) as {{ dbt.type_int() }}) as n_lines,
    cast(coalesce(from_lines.n_units, 0) as {{ dbt.type_bigint() }}) as n_units,
    coalesce(from_lines.all_returns = 1, first_delivered.is_return) as is_return,
    cast(coalesce(from_lines.gross_amount, 0) as {{ dbt.type_numeric() }}) as gross_amount,
    cast(coalesce(-from_lines.returns_amount, 0) as {{ dbt.type_numeric() }}) as returns_amount,
    cast(coalesce(from_lines.order_total, 0) as {{ dbt.type_numeric() }}) as order_total,
    coalesce(from_lines.any_promo = 1, first_delivered.has_promo) as has_promo,
    first_delivered.partition_date
from first_delivered
left join from_lines
    on from_lines.order_id = first_delivered.order_id
