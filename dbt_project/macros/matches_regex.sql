{# A boolean expression: `expression` matches the regular expression `pattern` (whole string). #}
{% macro matches_regex(expression, pattern) %}
    {{ return(adapter.dispatch('matches_regex', 'aiwf')(expression, pattern)) }}
{% endmacro %}

{# POSIX regular expression operator (Postgres and most engines). #}
{% macro default__matches_regex(expression, pattern) -%}
    ({{ expression }} ~ '^(?:{{ pattern }})$')
{%- endmacro %}

{% macro duckdb__matches_regex(expression, pattern) -%}
    regexp_full_match({{ expression }}, '{{ pattern }}')
{%- endmacro %}
