{{ config(tags=['daily']) }}

{#-
  Orders, tickets and sessions of each identified customer, per day. n_orders and the
  per-channel counts (one `<channel>_orders` column per declared channel, var `channels`)
  count purchases; revenue is net of the returns booked that day.
-#}
{%- set channels = var('channels') %}
with orders as (
    select
        customer_key,
        order_date as activity_date,
        case when is_return then 0 else 1 end as n_orders,
        n_units,
        order_total as revenue,
        {%- for channel in channels %}
        case when channel = '{{ channel }}' and not is_return then 1 else 0 end as {{ channel }}_orders,
        {%- endfor %}
        0 as n_tickets,
        0 as n_sessions,
        0 as pages_viewed,
        0 as product_views
    from {{ ref('int_orders__cross_channel') }}
    where customer_key is not null
),

tickets as (
    select
        customer_key,
        interaction_date as activity_date,
        0 as n_orders,
        0 as n_units,
        cast(0 as {{ dbt.type_numeric() }}) as revenue,
        {%- for channel in channels %}
        0 as {{ channel }}_orders,
        {%- endfor %}
        count(distinct interaction_id) as n_tickets,
        0 as n_sessions,
        0 as pages_viewed,
        0 as product_views
    from {{ ref('stg_cleaned__interactions') }}
    where kind = 'ticket'
      and customer_key is not null
    group by customer_key, interaction_date
),

sessions as (
    select
        customer_key,
        session_date as activity_date,
        0 as n_orders,
        0 as n_units,
        cast(0 as {{ dbt.type_numeric() }}) as revenue,
        {%- for channel in channels %}
        0 as {{ channel }}_orders,
        {%- endfor %}
        0 as n_tickets,
        1 as n_sessions,
        pages_viewed,
        product_views
    from {{ ref('int_sessions__to_orders') }}
),

activity as (
    select * from orders
    union all
    select * from tickets
    union all
    select * from sessions
)

select
    customer_key,
    activity_date,
    cast(sum(n_orders) as {{ dbt.type_bigint() }}) as n_orders,
    cast(sum(n_units) as {{ dbt.type_bigint() }}) as n_units,
    cast(sum(revenue) as {{ dbt.type_numeric() }}) as revenue,
    {%- for channel in channels %}
    cast(sum({{ channel }}_orders) as {{ dbt.type_bigint() }}) as {{ channel }}_orders,
    {%- endfor %}
    cast(sum(n_tickets) as {{ dbt.type_bigint() }}) as n_tickets,
    cast(sum(n_sessions) as {{ dbt.type_bigint() }}) as n_sessions,
    cast(sum(pages_viewed) as {{ dbt.type_bigint() }}) as pages_viewed,
    cast(sum(product_views) as {{ dbt.type_bigint() }}) as product_views
from activity
group by customer_key, activity_date
