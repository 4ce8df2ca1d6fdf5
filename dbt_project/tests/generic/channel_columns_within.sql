{#
  Fails on rows where the per-channel columns `<channel><suffix>` (one per declared channel,
  var `channels`) add up to more than `bound`, e.g. suffix `_share` and bound `1.000001`.
#}
{% test channel_columns_within(model, suffix, bound) %}
    select *
    from {{ model }}
    where (
        {%- for channel in var('channels') %}{{ channel }}{{ suffix }} + {% endfor -%} 0
    ) > {{ bound }}
{% endtest %}
