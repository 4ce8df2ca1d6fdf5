{#
  The delivery window of an incremental run: `--vars '{"min_date": "YYYY-MM-DD", "max_date":
  "YYYY-MM-DD"}'` (both inclusive), else the environment variables AIWF_DBT_MIN_DATE and
  AIWF_DBT_MAX_DATE, which is how Dagster passes the partition range: changing vars make dbt
  parse the whole project again, and the environment is read only when dbt executes (never
  while parsing), so a new window does not even re-parse a file. Without either there is no
  window: every delivery is in scope, so a run by hand rebuilds the daily facts in place.
#}
{% macro delivery_window() %}
    {%- set min_date = var('min_date', none) -%}
    {%- set max_date = var('max_date', none) -%}
    {%- if min_date is none and max_date is none and execute -%}
        {%- set min_date = env_var('AIWF_DBT_MIN_DATE', '') or none -%}
        {%- set max_date = env_var('AIWF_DBT_MAX_DATE', '') or none -%}
    {%- endif -%}
    {%- if min_date is none and max_date is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if min_date is none or max_date is none -%}
        {{ exceptions.raise_compiler_error(
            "pass both min_date and max_date in --vars, got min_date=" ~ min_date
            ~ " and max_date=" ~ max_date) }}
    {%- endif -%}
    {%- set bounds = [] -%}
    {%- for name, value in [('min_date', min_date), ('max_date', max_date)] -%}
        {%- set text = value | string -%}
        {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', text) -%}
            {{ exceptions.raise_compiler_error(
                "--vars " ~ name ~ " must be a date YYYY-MM-DD, got '" ~ text ~ "'") }}
        {%- endif -%}
        {%- do bounds.append(text) -%}
    {%- endfor -%}
    {%- if bounds[0] > bounds[1] -%}
        {{ exceptions.raise_compiler_error(
            "--vars min_date " ~ bounds[0] ~ " is after max_date " ~ bounds[1]) }}
    {%- endif -%}
    {{ return(bounds) }}
{% endmacro %}


{# A predicate: `column` (a delivery day) lies in the window; always true without a window. #}
{% macro in_delivery_window(column) -%}
    {%- set window = delivery_window() -%}
    {%- if window is none -%}
        1 = 1
    {%- else -%}
        {{ column }} between cast('{{ window[0] }}' as date) and cast('{{ window[1] }}' as date)
    {%- endif -%}
{%- endmacro %}


{#
  Incremental strategy `delivery_window` for facts deduplicated across deliveries. It deletes
  the target rows delivered in the window (a corrected re-delivery may have dropped some) and
  the rows whose key the new batch carries (the earliest delivery of a key may have changed),
  then inserts the batch. The batch must hold the winners of every key touched by the window.
#}
{% macro get_incremental_delivery_window_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set batch = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- if unique_key is none or unique_key is string -%}
        {{ exceptions.raise_compiler_error(
            "incremental_strategy='delivery_window' needs unique_key as a list of columns") }}
    {%- endif -%}
    {%- set columns_csv = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }} as target_rows
    where {{ in_delivery_window('target_rows.partition_date') }}
       or exists (
            select 1
            from {{ batch }} as batch_rows
            where
            {%- for key in unique_key %}
                batch_rows.{{ key }} = target_rows.{{ key }}{% if not loop.last %} and{% endif %}
            {%- endfor %}
       );

    insert into {{ target }} ({{ columns_csv }})
    select {{ columns_csv }}
    from {{ batch }}
{% endmacro %}
