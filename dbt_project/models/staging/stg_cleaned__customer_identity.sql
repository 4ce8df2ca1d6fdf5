select
    identifier_hash,
    identifier_kind,
    customer_key
from {{ source('cleaned', 'customer_identity') }}
