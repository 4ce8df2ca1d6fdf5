{{ config(tags=['daily']) }}

select
    cast(partition_date as date) as partition_date,
    channel,
    source_file,
    cast(source_row as {{ dbt.type_bigint() }}) as source_row,
    reasons,
    record as raw_record
from {{ source('cleaned', 'quarantine') }}
