{#
  Reconciliation: sum(`column_name`) over `model` equals sum(`compare_expression`) over
  `compare_model` (filtered by `compare_where`), within `tolerance` (for sums of floating
  point amounts). Fails with one row holding both totals.
#}
{% test sums_match(model, column_name, compare_model, compare_expression, compare_where='1 = 1', tolerance=0) %}
    with totals as (
        select
            (select coalesce(sum({{ column_name }}), 0) from {{ model }}) as model_total,
            (
                select coalesce(sum({{ compare_expression }}), 0)
                from {{ compare_model }}
                where {{ compare_where }}
            ) as compare_total
    )
    select model_total, compare_total
    from totals
    where abs(model_total - compare_total) > {{ tolerance }}
{% endtest %}
