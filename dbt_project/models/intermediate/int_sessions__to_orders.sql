{{ config(tags=['daily']) }}

{#-
  Identified web sessions (earliest delivery of each) with the online orders (the channels of
  the order sources declared `online`, var online_channels: web and app for the packaged ones)
  the same customer placed on the session's day. Anonymous sessions cannot be linked and are
  left out.
-#}
{%- set online_channels = var('online_channels') %}
with sessions as (
    {{ first_delivery(ref('stg_cleaned__interactions'), ['interaction_id'], ['source_file', 'source_row']) }}
),

online_orders as (
    select
        customer_key,
        order_date,
        count(*) as n_orders
    from {{ ref('int_orders__cross_channel') }}
    where {% if online_channels | length > 0 -%}
        channel in ({% for c in online_channels %}'{{ c }}'{% if not loop.last %}, {% endif %}{% endfor %})
    {%- else -%}
        1 = 0
    {%- endif %}
      and customer_key is not null
      and not is_return  -- a return is no conversion
    group by customer_key, order_date
)

select
    sessions.interaction_id as session_id,
    sessions.customer_key,
    sessions.interaction_date as session_date,
    sessions.subtype as device,
    coalesce(sessions.pages_viewed, 0) as pages_viewed,
    coalesce(sessions.product_views, 0) as product_views,
    coalesce(sessions.added_to_cart, 0) as added_to_cart,
    sessions.duration_s,
    cast(coalesce(online_orders.n_orders, 0) as {{ dbt.type_bigint() }}) as same_day_online_orders,
    online_orders.n_orders is not null as converted
from sessions
left join online_orders
    on online_orders.customer_key = sessions.customer_key
   and online_orders.order_date = sessions.interaction_date
where sessions.kind = 'session'
  and sessions.customer_key is not null
