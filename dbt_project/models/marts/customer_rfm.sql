{#-
  Recency, frequency and monetary value of every customer with an order, as of the last order
  day in the data, with channel mix, tenure (from CRM sign-up, else the first order) and service
  contacts.
-#}
with orders as (
    select * from {{ ref('fct_orders') }}
),

as_of as (
    select max(order_date) as as_of_date
    from orders
),

per_customer as (
    select
        customer_key,
        count(*) as frequency,
        -- money is summed as exact decimals, so both engines agree to the cent
        sum(cast(order_total as {{ dbt.type_numeric() }})) as monetary,
        max(order_date) as last_order_date,
        sum(case when channel = 'web' then 1 else 0 end) as web_orders,
        sum(case when channel = 'app' then 1 else 0 end) as app_orders,
        sum(case when channel = 'store' then 1 else 0 end) as store_orders
    from orders
    where customer_key is not null
    group by customer_key
),

contacts as (
    select
        customer_key,
        sum(n_tickets) as n_tickets,
        sum(n_sessions) as n_sessions
    from {{ ref('fct_customer_daily_activity') }}
    group by customer_key
)

select
    per_customer.customer_key,
    as_of.as_of_date,
    cast({{ dbt.datediff('per_customer.last_order_date', 'as_of.as_of_date', 'day') }} as {{ dbt.type_bigint() }}) as recency_days,
    cast(per_customer.frequency as {{ dbt.type_bigint() }}) as frequency,
    cast(per_customer.monetary as double precision) as monetary,
    cast(per_customer.monetary as double precision) / per_customer.frequency as avg_basket,
    cast(per_customer.web_orders as double precision) / per_customer.frequency as web_share,
    cast(per_customer.app_orders as double precision) / per_customer.frequency as app_share,
    cast(per_customer.store_orders as double precision) / per_customer.frequency as store_share,
    cast({{ dbt.datediff('coalesce(customers.signup_date, customers.first_order_date)', 'as_of.as_of_date', 'day') }} as {{ dbt.type_bigint() }}) as tenure_days,
    cast(coalesce(contacts.n_tickets, 0) as {{ dbt.type_bigint() }}) as n_tickets,
    cast(coalesce(contacts.n_sessions, 0) as {{ dbt.type_bigint() }}) as n_sessions
from per_customer
cross join as_of
inner join {{ ref('dim_customers') }} as customers
    on customers.customer_key = per_customer.customer_key
left join contacts
    on contacts.customer_key = per_customer.customer_key
