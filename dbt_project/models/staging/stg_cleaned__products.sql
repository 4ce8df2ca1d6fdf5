select
    sku,
    name as product_name,
    category,
    subcategory,
    cast(list_price as {{ dbt.type_numeric() }}) as list_price
from {{ source('cleaned', 'products') }}
