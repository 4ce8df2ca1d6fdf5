{{ config(tags=['daily']) }}

select
    cast(partition_date as date) as partition_date,
    interaction_id,
    kind,
    customer_key,
    cast(occurred_at as timestamp with time zone) as occurred_at,
    cast(interaction_date as date) as interaction_date,
    subtype,
    contact_channel,
    cast(satisfaction as {{ dbt.type_int() }}) as satisfaction,
    cast(pages_viewed as {{ dbt.type_int() }}) as pages_viewed,
    cast(product_views as {{ dbt.type_int() }}) as product_views,
    cast(added_to_cart as {{ dbt.type_int() }}) as added_to_cart,
    cast(duration_s as {{ dbt.type_int() }}) as duration_s,
    source_file,
    cast(source_row as {{ dbt.type_bigint() }}) as source_row
from {{ source('cleaned', 'interactions') }}
