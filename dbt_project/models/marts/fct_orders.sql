-- depends_on: {{ ref('stg_cleaned__orders') }}
-- depends_on: {{ ref('stg_cleaned__order_lines') }}
{{
    config(
        materialized='incremental',
        incremental_strategy='delivery_window',
        unique_key=['order_id'],
        tags=['daily'],
    )
}}

{#-
  An incremental run recomputes every order the delivery window touches: orders delivered in
  the window, orders with a line delivered in the window (a late line changes the order's line
  count, units and amounts), orders this table holds from the window, and orders whose
  line-derived columns no longer match their lines (a corrected re-delivery dropped or moved a
  line delivered later than the order: nothing of the order is in the window any more) or
  whose customer changed (a return attributed to the customer of its original order, which
  the window delivered after the return).
-#}
with orders as (
    select * from {{ ref('int_orders__cross_channel') }}
)

{% if is_incremental() %}
, touched as (
    select order_id
    from {{ ref('stg_cleaned__orders') }}
    where {{ in_delivery_window('partition_date') }}
    union
    select order_id
    from {{ ref('stg_cleaned__order_lines') }}
    where {{ in_delivery_window('partition_date') }}
    union
    select order_id
    from {{ this }}
    where {{ in_delivery_window('partition_date') }}
    union
    select kept.order_id
    from {{ this }} as kept
    inner join orders
        on orders.order_id = kept.order_id
    where kept.n_lines <> orders.n_lines
       or kept.n_units <> orders.n_units
       or kept.is_return <> orders.is_return
       or kept.gross_amount <> cast(orders.gross_amount as double precision)
       or kept.returns_amount <> cast(orders.returns_amount as double precision)
       or kept.order_total <> cast(orders.order_total as double precision)
       or kept.has_promo <> orders.has_promo
       or kept.customer_key is distinct from orders.customer_key
)
{% endif %}

select
    orders.order_id,
    orders.channel,
    orders.customer_key,
    orders.customer_key_source,
    orders.ordered_at,
    orders.order_date,
    orders.store_code,
    orders.n_lines,
    orders.n_units,
    orders.is_return,
    cast(orders.gross_amount as double precision) as gross_amount,
    cast(orders.returns_amount as double precision) as returns_amount,
    cast(orders.order_total as double precision) as order_total,
    orders.has_promo,
    orders.partition_date
from orders
{% if is_incremental() %}
inner join touched
    on touched.order_id = orders.order_id
{% endif %}
