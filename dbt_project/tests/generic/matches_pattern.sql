{# Fails on non-null values of `column_name` that do not match the regular expression `pattern`. #}
{% test matches_pattern(model, column_name, pattern) %}
    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} is not null
      and not {{ matches_regex(column_name, pattern) }}
{% endtest %}
