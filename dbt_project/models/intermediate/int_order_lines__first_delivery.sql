{{ config(tags=['daily']) }}

{#- A line re-delivered in a later file keeps the copy from its earliest delivery. -#}
with first_delivered as (
    {{ first_delivery(ref('stg_cleaned__order_lines'), ['order_id', 'line_number'], ['source_file', 'source_row']) }}
)

select
    order_id,
    line_number,
    channel,
    customer_key,
    ordered_at,
    order_date,
    sku,
    line_kind,
    is_return,
    original_order_id,
    quantity,
    unit_price,
    line_amount,
    currency,
    line_amount_source,
    is_promo,
    partition_date
from first_delivered
