{# Fails on rows where the boolean `expression` is false or null (column-level or model-level). #}
{% test expression_is_true(model, expression, column_name=none) %}
    select *
    from {{ model }}
    where not coalesce({{ expression }}, false)
{% endtest %}
