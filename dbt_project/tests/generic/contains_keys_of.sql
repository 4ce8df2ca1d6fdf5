{#
  Fails on each key (`columns`, all non-null) of `source_model` missing from `model`. With
  `window_column`, only source rows whose delivery day is in the run's delivery window count.
#}
{% test contains_keys_of(model, columns, source_model, window_column=none) %}
    select distinct {% for column in columns %}source_rows.{{ column }}{% if not loop.last %}, {% endif %}{% endfor %}
    from {{ source_model }} as source_rows
    where {{ in_delivery_window('source_rows.' ~ window_column) if window_column else '1 = 1' }}
    {%- for column in columns %}
      and source_rows.{{ column }} is not null
    {%- endfor %}
      and not exists (
        select 1
        from {{ model }} as model_rows
        where
        {%- for column in columns %}
            model_rows.{{ column }} = source_rows.{{ column }}{% if not loop.last %} and{% endif %}
        {%- endfor %}
      )
{% endtest %}
