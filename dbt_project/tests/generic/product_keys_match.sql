{#
  Fails on merchandise lines whose `column_name` does not match the product-key pattern their
  channel declares (var `product_keys`: channel -> regular expression, from the sources).
  Channels without a declared pattern and non-product lines (postage, fees, ...) are not checked.
#}
{% test product_keys_match(model, column_name) %}
    select channel, {{ column_name }}
    from {{ model }}
    where line_kind = 'product'
      and (
        {%- for channel, pattern in var('product_keys').items() %}
        (channel = '{{ channel }}' and not {{ matches_regex(column_name, pattern) }}) or
        {%- endfor %}
        1 = 0
      )
{% endtest %}
