{#
  Reconciliation: sum(`column_name`) over `model` equals sum(`compare_expression`) over
  `compare_model` (filtered by `compare_where`), within `tolerance`. Both sides are summed
  as numeric (exact, 6 decimals): a sum of millions of doubles is off by more than a cent
  in an order-dependent way (seen at 12M order lines), which would fail a true match.
  Fails with one row holding both totals.
#}
{% test sums_match(model, column_name, compare_model, compare_expression, compare_where='1 = 1', tolerance=0) %}
    with totals as (
        select
            (
                select coalesce(sum(cast({{ column_name }} as {{ dbt.type_numeric() }})), 0)
                from {{ model }}
            ) as model_total,
            (
                select coalesce(sum(cast({{ compare_expression }} as {{ dbt.type_numeric() }})), 0)
                from {{ compare_model }}
                where {{ compare_where }}
            ) as compare_total
    )
    select model_total, compare_total
    from totals
    where abs(model_total - compare_total) > {{ tolerance }}
{% endtest %}
