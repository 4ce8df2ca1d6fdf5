select
    customer_key,
    crm_id_hash,
    email_hash,
    phone_hash,
    loyalty_hash,
    cast(signup_date as date) as signup_date,
    country,
    cast(birth_year as {{ dbt.type_int() }}) as birth_year
from {{ source('cleaned', 'customers') }}
