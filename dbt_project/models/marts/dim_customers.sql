{#-
  Every customer key the business knows: CRM customers, and keys first seen in orders or
  interactions (identifiers the CRM does not know), which have no CRM attributes.
-#}
with crm as (
    select
        customer_key,
        signup_date,
        country,
        birth_year
    from {{ ref('stg_cleaned__customers') }}
),

ordering as (
    select
        customer_key,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date
    from {{ ref('fct_orders') }}
    where customer_key is not null
      and not is_return
    group by customer_key
),

keys as (
    select customer_key from crm
    union
    select distinct customer_key from {{ ref('fct_customer_daily_activity') }}
)

select
    keys.customer_key,
    crm.signup_date,
    crm.country,
    crm.birth_year,
    ordering.first_order_date,
    ordering.last_order_date,
    crm.customer_key is not null as is_known_to_crm
from keys
left join crm
    on crm.customer_key = keys.customer_key
left join ordering
    on ordering.customer_key = keys.customer_key
