{#-
  Recency, frequency and monetary value of every customer with a purchase, as of the last
  purchase day in the data, with channel mix (a `<channel>_share` per declared channel, var
  `channels`), tenure (from CRM sign-up, else the first order) and service contacts.
  Frequency and recency count purchases; monetary is net of returns and cancellations.
-#}
{%- set channels = var('channels') %}
with orders as (
    select * from {{ ref('fct_orders') }}
),

as_of as (
    select max(order_date) as as_of_date
    from orders
    where not is_return
),

per_customer as (
    select
        customer_key,
        sum(case when is_return then 0 else 1 end) as frequency,
        -- money is summed as exact decimals, so both engines agree to the cent
        sum(cast(order_total as {{ dbt.type_numeric() }})) as monetary,
        max(case when is_return then null else order_date end) as last_order_date,
        {%- for channel in channels %}
        sum(case when channel = '{{ channel }}' and not is_return then 1 else 0 end) as {{ channel }}_orders{{ "," if not loop.last }}
        {%- endfor %}
    from orders
    where customer_key is not null
    group by customer_key
    having sum(case when is_return then 0 else 1 end) > 0
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
    cast(round(per_customer.monetary, 2) as double precision) as monetary,
    cast(per_customer.monetary as double precision) / per_customer.frequency as avg_basket,
    {%- for channel in channels %}
    cast(per_customer.{{ channel }}_orders as double precision) / per_customer.frequency as {{ channel }}_share,
    {%- endfor %}
    cast({{ dbt.datediff('coalesce(customers.signup_date, customers.first_order_date)', 'as_of.as_of_date', 'day') }} as {{ dbt.type_bigint() }}) as tenure_days,
    cast(coalesce(contacts.n_tickets, 0) as {{ dbt.type_bigint() }}) as n_tickets,
    cast(coalesce(contacts.n_sessions, 0) as {{ dbt.type_bigint() }}) as n_sessions
from per_customer
cross join as_of
inner join {{ ref('dim_customers') }} as customers
    on customers.customer_key = per_customer.customer_key
left join contacts
    on contacts.customer_key = per_customer.customer_key
