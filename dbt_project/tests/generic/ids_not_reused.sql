{#
  Fails on each key (`key_columns`) delivered on several days whose copies lie more than
  `max_hours` apart in `time_column`: not one record delivered again (a re-delivery repeats
  its time), but an id the source uses again for another record, as a till that restarts
  its receipt numbers every day does. The marts keep the earliest delivery of a key
  (macros/first_delivery.sql), so the later record would be left out; failing holds the
  marts back instead, until the source declares its ids unique within the order's day
  (`within: [..., order_day]`, with `day_ends_at` when its business day runs past
  midnight; docs/SOURCES.md) or the ids are corrected. One row per key:
  its delivery days and the first and last time.

  An incremental run (a delivery window) reports only keys with a copy delivered in its
  window; a full build reports every key. A `where` config narrows the copies compared (the
  order tests compare sales only: a return filed under its sale's id, with the return's
  time, is not another sale).
#}
{% test ids_not_reused(model, key_columns, time_column, max_hours=24) %}
    {%- set keys = key_columns | join(', ') -%}
    {%- set day_text = 'cast(partition_date as ' ~ dbt.type_string() ~ ')' -%}
    select
        {{ keys }},
        {{ dbt.listagg('distinct ' ~ day_text, "', '", 'order by ' ~ day_text) }}
            as delivery_days,
        min({{ time_column }}) as first_time,
        max({{ time_column }}) as last_time
    from {{ model }}
    group by {{ keys }}
    having count(distinct partition_date) > 1
        and max({{ time_column }}) - min({{ time_column }}) > interval '{{ max_hours }} hours'
    {%- if delivery_window() is not none %}
        and max(case when {{ in_delivery_window('partition_date') }} then 1 else 0 end) = 1
    {%- endif %}
{% endtest %}
