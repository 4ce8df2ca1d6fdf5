{#
  One row per key from a daily cleaned relation: the copy from the earliest delivery
  (partition_date), ties broken by `tiebreak_columns`. Re-delivered files repeat rows across
  partitions; the first delivery wins. Adds a `delivery_rank` column (always 1).
#}
{% macro first_delivery(relation, key_columns, tiebreak_columns=[]) %}
    {{ return(adapter.dispatch('first_delivery', 'aiwf')(relation, key_columns, tiebreak_columns)) }}
{% endmacro %}


{# Rank every row within its key, keep the first. #}
{% macro default__first_delivery(relation, key_columns, tiebreak_columns) %}
    {{ first_of_each_key(relation, key_columns, tiebreak_columns) }}
{% endmacro %}


{#
  The first row of each key among the rows of `relation` (aliased `delivered`) that pass
  `where` (SQL over `delivered`; none: every row), ranked by delivery day then
  `tiebreak_columns`, with its `delivery_rank` (1).
#}
{% macro first_of_each_key(relation, key_columns, tiebreak_columns, where=none) %}
    select *
    from (
        select
            delivered.*,
            row_number() over (
                partition by {{ key_columns | join(', ') }}
                order by partition_date{% for column in tiebreak_columns %}, {{ column }}{% endfor %}
            ) as delivery_rank
        from {{ relation }} as delivered
        {% if where %}where {{ where }}{% endif %}
    ) as ranked
    where delivery_rank = 1
{% endmacro %}


{#
  DuckDB: the same rows, but only keys delivered more than once are ranked. Ranking drags every
  column of every row through a sort by key: on 7.7M order lines (scale 10, 365 days) 14 CPU s
  against 9 s this way, 7 s of them copying the rows (docs/MARTS.md). Keys match with
  `is not distinct from`, so a null key is one key, as in `partition by`.
#}
{% macro duckdb__first_delivery(relation, key_columns, tiebreak_columns) %}
    {%- set same_key -%}
        {%- for column in key_columns -%}
            repeated.{{ column }} is not distinct from delivered.{{ column }}{% if not loop.last %} and {% endif %}
        {%- endfor -%}
    {%- endset %}
    select *
    from (
        with repeated as (
            select {{ key_columns | join(', ') }}
            from {{ relation }}
            group by {{ key_columns | join(', ') }}
            having count(*) > 1
        )

        select delivered.*, cast(1 as {{ dbt.type_bigint() }}) as delivery_rank
        from {{ relation }} as delivered
        where not exists (select 1 from repeated where {{ same_key }})

        union all

        {{ first_of_each_key(
            relation, key_columns, tiebreak_columns,
            where="exists (select 1 from repeated where " ~ same_key ~ ")"
        ) }}
    ) as deduplicated
{% endmacro %}
