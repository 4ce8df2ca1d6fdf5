{# Fails (one row with the count) when `model` has fewer than `min_count` rows. #}
{% test min_row_count(model, min_count) %}
    select row_count
    from (select count(*) as row_count from {{ model }}) as counted
    where row_count < {{ min_count }}
{% endtest %}


{#
  Fails (one row with both counts) when `model` does not have exactly as many rows as
  `compare_model` has rows matching `compare_where`.
#}
{% test row_count_matches(model, compare_model, compare_where='1 = 1') %}
    with counts as (
        select
            (select count(*) from {{ model }}) as model_count,
            (select count(*) from {{ compare_model }} where {{ compare_where }}) as compare_count
    )
    select model_count, compare_count
    from counts
    where model_count <> compare_count
{% endtest %}
