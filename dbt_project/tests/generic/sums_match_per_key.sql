{#
  Reconciliation per key: for each key (`key_columns`), the sum of every column of `sums` over
  `model` equals the sum of its expression over `compare_model`, within `tolerance` (a key
  missing on one side sums to 0 there). `sums` maps a column of `model` to an expression over
  `compare_model`'s columns. Summed as numeric (exact, 6 decimals), like `sums_match`.
  With `window_column` (a delivery day both models have), an incremental run compares only
  the keys with a row delivered in its window on either side; a full build compares all.
  Fails with one row per key that differs: the key and both sums of every column.
#}
{% test sums_match_per_key(model, key_columns, compare_model, sums, window_column=none, tolerance=0) %}
    {%- set windowed = window_column is not none and delivery_window() is not none -%}
    {%- set keys = key_columns | join(', ') -%}
    with
    {% if windowed %}
    in_window as (
        select {{ keys }} from {{ model }} where {{ in_delivery_window(window_column) }}
        union
        select {{ keys }} from {{ compare_model }} where {{ in_delivery_window(window_column) }}
    ),
    {% endif %}
    model_sums as (
        select
            {{ keys }},
            {%- for column in sums %}
            sum(cast({{ column }} as {{ dbt.type_numeric() }})) as {{ column }}{{ "," if not loop.last }}
            {%- endfor %}
        from {{ model }} as model_rows
        {% if windowed %}inner join in_window using ({{ keys }}){% endif %}
        group by {{ keys }}
    ),
    compare_sums as (
        select
            {{ keys }},
            {%- for column, expression in sums.items() %}
            sum(cast({{ expression }} as {{ dbt.type_numeric() }})) as {{ column }}{{ "," if not loop.last }}
            {%- endfor %}
        from {{ compare_model }} as compare_rows
        {% if windowed %}inner join in_window using ({{ keys }}){% endif %}
        group by {{ keys }}
    )
    select
        {{ keys }},
        {%- for column in sums %}
        coalesce(model_sums.{{ column }}, 0) as model_{{ column }},
        coalesce(compare_sums.{{ column }}, 0) as compare_{{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from model_sums
    full outer join compare_sums using ({{ keys }})
    where
    {%- for column in sums %}
        abs(coalesce(model_sums.{{ column }}, 0) - coalesce(compare_sums.{{ column }}, 0)) > {{ tolerance }}{% if not loop.last %} or{% endif %}
    {%- endfor %}
{% endtest %}
