{#
  Fails on each key (`key_columns`) whose deliveries differ: delivered again on a later day
  with another value in any column but the key and `lineage_columns` (where and when a copy
  came from). The marts keep the earliest copy (macros/first_delivery.sql), so without this
  test a changed re-delivery would be dropped without a word. One row per such key: its
  delivery days, the day whose copy is kept, how many different versions, which columns
  differ. Copies equal in every compared column pass, nulls included (`distinct` and the
  null count below treat two nulls as equal); amounts are compared as staging carries them
  (numeric(28,6), exact).

  The compared columns are read from the relation when the test runs (so a `where` config,
  which makes `model` a subquery, is not supported). Only keys delivered more than once are
  compared: most keys are delivered once, and all it costs them is one grouping of the key
  columns. Keys match with `=` (a null key is the not_null tests' business), so both engines
  hash-join.

  An incremental run (a delivery window) reports only keys with a copy delivered in its
  window, so a changed re-delivery warns in the runs of its delivery days (and when one of
  them is re-materialised), not in every later daily run; a full build reports every key.
#}
{% test redeliveries_unchanged(model, key_columns, lineage_columns=['partition_date', 'source_file', 'source_row']) %}
    {%- set skipped = (key_columns + lineage_columns) | map('lower') | list -%}
    {%- set compared = [] -%}
    {%- if execute -%}
        {%- for column in adapter.get_columns_in_relation(model) -%}
            {%- if column.name | lower not in skipped -%}
                {%- do compared.append(column.name | lower) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if not compared -%}
            {{ exceptions.raise_compiler_error(
                "redeliveries_unchanged: " ~ model ~ " has no column besides the key and lineage") }}
        {%- endif -%}
    {%- endif -%}
    {%- set keys = key_columns | join(', ') -%}

    with repeated as (
        select {{ keys }}
        from {{ model }}
        group by {{ keys }}
        having count(*) > 1
        {%- if delivery_window() is not none %}
            and max(case when {{ in_delivery_window('partition_date') }} then 1 else 0 end) = 1
        {%- endif %}
    ),

    copies as (
        select delivered.*
        from {{ model }} as delivered
        where exists (
            select 1
            from repeated
            where {% for column in key_columns -%}
                repeated.{{ column }} = delivered.{{ column }}{% if not loop.last %} and {% endif %}
            {%- endfor %}
        )
    ),

    changed as (
        select {{ keys }}, count(*) as n_versions
        from (select distinct {{ keys }}, {{ compared | join(', ') }} from copies) as versions
        group by {{ keys }}
        having count(*) > 1
    )

    select
        {%- for column in key_columns %}
        changed.{{ column }},
        {%- endfor %}
        {{ dbt.listagg(
            'cast(copies.partition_date as ' ~ dbt.type_string() ~ ')',
            "', '",
            'order by copies.partition_date'
        ) }} as delivery_days,
        min(copies.partition_date) as kept_delivery,
        changed.n_versions,
        concat_ws(', '
            {%- for column in compared %},
            case
                when count(distinct copies.{{ column }})
                    + max(case when copies.{{ column }} is null then 1 else 0 end) > 1
                then '{{ column }}'
            end
            {%- endfor %}
        ) as changed_columns
    from changed
    inner join copies
        on {% for column in key_columns -%}
            copies.{{ column }} = changed.{{ column }}{% if not loop.last %} and {% endif %}
        {%- endfor %}
    group by {% for column in key_columns %}changed.{{ column }}, {% endfor %}changed.n_versions
{% endtest %}
