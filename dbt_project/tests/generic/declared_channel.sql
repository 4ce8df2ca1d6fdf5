{# Fails on values of `column_name` that are not a channel of the declared sources (var `channels`). #}
{% test declared_channel(model, column_name) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} not in (
        {%- for channel in var('channels') %}'{{ channel }}'{{ ", " if not loop.last }}{% endfor -%}
    )
{% endtest %}
