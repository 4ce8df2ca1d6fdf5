{#
  Fails on each (original order, product) whose returns took back more units than that
  order sold of the product, an order never seen included (0 sold). Only return lines
  that name their order (`original_order_id`) are checked: an export that does not say
  which order was returned (an invoice-prefix export) cannot be matched. One row per such
  pair: the order, the product, units returned and sold, the first return order and its
  delivery day (`window_column`). An incremental run reports only pairs with a return
  delivered in its window (so a pair warns once, not in every later daily run); a full
  build reports every pair.
#}
{% test returns_within_their_sale(model, window_column='partition_date') %}
    {%- set windowed = delivery_window() is not none -%}
    with returned as (
        select
            original_order_id,
            sku,
            -sum(quantity) as units_returned,
            min(order_id) as first_return,
            min({{ window_column }}) as first_delivered
        from {{ model }}
        where is_return and original_order_id is not null
        group by original_order_id, sku
        {%- if windowed %}
        having max(case when {{ in_delivery_window(window_column) }} then 1 else 0 end) = 1
        {%- endif %}
    ),

    sold as (
        select order_id, sku, sum(quantity) as units_sold
        from {{ model }} as sales
        where not is_return
            and exists (
                select 1 from returned
                where returned.original_order_id = sales.order_id and returned.sku = sales.sku
            )
        group by order_id, sku
    )

    select
        returned.original_order_id,
        returned.sku,
        returned.units_returned,
        coalesce(sold.units_sold, 0) as units_sold,
        returned.first_return,
        returned.first_delivered
    from returned
    left join sold
        on sold.order_id = returned.original_order_id and sold.sku = returned.sku
    where returned.units_returned > coalesce(sold.units_sold, 0)
{% endtest %}
