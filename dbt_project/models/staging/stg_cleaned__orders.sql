{{ config(tags=['daily']) }}

select
    cast(partition_date as date) as partition_date,
    order_id,
    channel,
    customer_key,
    cast(ordered_at as timestamp with time zone) as ordered_at,
    cast(order_date as date) as order_date,
    store_code,
    cast(n_lines as {{ dbt.type_int() }}) as n_lines,
    cast(is_return as {{ dbt.type_boolean() }}) as is_return,
    cast(gross_amount as {{ dbt.type_numeric() }}) as gross_amount,
    cast(returns_amount as {{ dbt.type_numeric() }}) as returns_amount,
    cast(order_total as {{ dbt.type_numeric() }}) as order_total,
    cast(has_promo as {{ dbt.type_boolean() }}) as has_promo,
    source_file
from {{ source('cleaned', 'orders') }}
