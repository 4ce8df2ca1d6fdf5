{{ config(tags=['daily']) }}

{#-
  Orders of every channel in one shape: the header (channel, customer, order time, store) of
  each order's earliest delivery, and everything derived from lines (n_lines, n_units of goods, amounts,
  is_return, has_promo) over its deduplicated lines of every delivery. Each delivery's order row
  aggregates only that day's lines: an order whose line arrives a day late has an order row per
  day, and the earliest alone would miss the late line. Money is summed as exact decimals.

  A return without a customer of its own (a store return made without the card) whose lines
  name the order(s) it returns (`original_order_id`) gets the customer of those orders, when
  every order it names is known and has the same customer (their own header customer):
  `customer_key_source` says `original_order`; `own` for a customer on the order itself.
-#}
with first_delivered as (
    {{ first_delivery(ref('stg_cleaned__orders'), ['order_id'], ['source_file']) }}
),

from_lines as (
    select
        order_id,
        count(*) as n_lines,
        -- goods only: a shipping, discount or fee line is money of the order, not a unit
        sum(case when line_kind = 'product' then quantity else 0 end) as n_units,
        min(case when is_return then 1 else 0 end) as all_returns,
        max(case when is_promo then 1 else 0 end) as any_promo,
        sum(case when is_return then 0 else cast(line_amount as {{ dbt.type_numeric() }}) end) as gross_amount,
        sum(case when is_return then cast(line_amount as {{ dbt.type_numeric() }}) else 0 end) as returns_amount,
        sum(cast(line_amount as {{ dbt.type_numeric() }})) as order_total
    from {{ ref('int_order_lines__first_delivery') }}
    group by order_id
),

named_originals as (
    select distinct
        order_id,
        original_order_id
    from {{ ref('int_order_lines__first_delivery') }}
    where is_return
      and original_order_id is not null
),

-- one customer when every named order is known, has a customer, and they all agree
original_customer as (
    select
        named_originals.order_id,
        min(originals.customer_key) as customer_key
    from named_originals
    left join first_delivered as originals
        on originals.order_id = named_originals.original_order_id
    group by named_originals.order_id
    having count(originals.customer_key) = count(*)
       and min(originals.customer_key) = max(originals.customer_key)
),

orders as (
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
)

select
    orders.order_id,
    orders.channel,
    case
        when orders.customer_key is not null then orders.customer_key
        when orders.is_return then original_customer.customer_key
    end as customer_key,
    case
        when orders.customer_key is not null then 'own'
        when orders.is_return and original_customer.customer_key is not null then 'original_order'
    end as customer_key_source,
    orders.ordered_at,
    orders.order_date,
    orders.store_code,
    orders.n_lines,
    orders.n_units,
    orders.is_return,
    orders.gross_amount,
    orders.returns_amount,
    orders.order_total,
    orders.has_promo,
    orders.partition_date
from orders
left join original_customer
    on original_customer.order_id = orders.order_id
