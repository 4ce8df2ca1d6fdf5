-- depends_on: {{ ref('fct_product_daily_sales') }}
{#
  The dependency orders the build only (nothing is read from the sales): the test
  dim_products_has_every_sold_product reads them, and with indirect selection `buildable` dbt
  runs a test only where each model it reads is selected or upstream of the selection.
#}
select
    sku,
    product_name as name,
    category,
    subcategory,
    cast(list_price as double precision) as list_price
from {{ ref('stg_cleaned__products') }}
