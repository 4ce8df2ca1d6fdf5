{#
  Fails on rows where a per-channel column `<channel><suffix>` (one per declared channel,
  var `channels`) is negative, or where they add up to more than `bound`, e.g. suffix
  `_share` and bound `1.000001`. Declared channels only: no column is named here.
#}
{% test channel_columns_within(model, suffix, bound) %}
    select *
    from {{ model }}
    where (
        {%- for channel in var('channels') %}{{ channel }}{{ suffix }} + {% endfor -%} 0
    ) > {{ bound }}
    {%- for channel in var('channels') %}
       or {{ channel }}{{ suffix }} < 0
    {%- endfor %}
{% endtest %}
