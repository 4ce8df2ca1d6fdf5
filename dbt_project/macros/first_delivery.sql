{#
  One row per key from a daily cleaned relation: the copy from the earliest delivery
  (partition_date), ties broken by `tiebreak_columns`. Re-delivered files repeat rows across
  partitions; the first delivery wins. Adds a `delivery_rank` column (always 1).
#}
{% macro first_delivery(relation, key_columns, tiebreak_columns=[]) %}
    select *
    from (
        select
            delivered.*,
            row_number() over (
                partition by {{ key_columns | join(', ') }}
                order by partition_date{% for column in tiebreak_columns %}, {{ column }}{% endfor %}
            ) as delivery_rank
        from {{ relation }} as delivered
    ) as ranked
    where delivery_rank = 1
{% endmacro %}
