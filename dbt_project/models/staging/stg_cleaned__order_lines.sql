{{ config(tags=['daily']) }}

select
    cast(partition_date as date) as partition_date,
    order_id,
    cast(line_number as {{ dbt.type_int() }}) as line_number,
    channel,
    customer_key,
    cast(ordered_at as timestamp with time zone) as ordered_at,
    cast(order_date as date) as order_date,
    sku,
    line_kind,
    cast(is_return as {{ dbt.type_boolean() }}) as is_return,
    original_order_id,
    cast(quantity as {{ dbt.type_int() }}) as quantity,
    cast(unit_price as {{ dbt.type_numeric() }}) as unit_price,
    cast(line_amount as {{ dbt.type_numeric() }}) as line_amount,
    currency,
    cast(line_amount_source as {{ dbt.type_numeric() }}) as line_amount_source,
    cast(is_promo as {{ dbt.type_boolean() }}) as is_promo,
    source_file,
    cast(source_row as {{ dbt.type_bigint() }}) as source_row
from {{ source('cleaned', 'order_lines') }}
