select
    sku,
    product_name as name,
    category,
    subcategory,
    cast(list_price as double precision) as list_price
from {{ ref('stg_cleaned__products') }}
