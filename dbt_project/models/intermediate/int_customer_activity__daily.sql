{{ config(tags=['daily']) }}

{#- Orders, tickets and sessions of each identified customer, per day. -#}
with orders as (
    select
        customer_key,
        order_date as activity_date,
        1 as n_orders,
        n_units,
        order_total as revenue,
        case when channel = 'web' then 1 else 0 end as web_orders,
        case when channel = 'app' then 1 else 0 end as app_orders,
        case when channel = 'store' then 1 else 0 end as store_orders,
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
        0 as web_orders,
        0 as app_orders,
        0 as store_orders,
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
        0 as web_orders,
        0 as app_orders,
        0 as store_orders,
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
    cast(sum(web_orders) as {{ dbt.type_bigint() }}) as web_orders,
    cast(sum(app_orders) as {{ dbt.type_bigint() }}) as app_orders,
    cast(sum(store_orders) as {{ dbt.type_bigint() }}) as store_orders,
    cast(sum(n_tickets) as {{ dbt.type_bigint() }}) as n_tickets,
    cast(sum(n_sessions) as {{ dbt.type_bigint() }}) as n_sessions,
    cast(sum(pages_viewed) as {{ dbt.type_bigint() }}) as pages_viewed,
    cast(sum(product_views) as {{ dbt.type_bigint() }}) as product_views
from activity
group by customer_key, activity_date
