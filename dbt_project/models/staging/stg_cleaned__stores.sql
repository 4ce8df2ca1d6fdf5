select
    store_code,
    name as store_name,
    city,
    region,
    cast(opened_date as date) as opened_date
from {{ source('cleaned', 'stores') }}
