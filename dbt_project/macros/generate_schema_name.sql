{#
  Models land in the schema named by their folder (staging, intermediate, marts) and never in
  the target's default schema. On Postgres, AIWF_WAREHOUSE_SCHEMA_SUFFIX is appended to every
  schema (the sources' `cleaned` too, see models/staging/_cleaned__sources.yml), so a test run
  can own its schemas in a shared database. DuckDB warehouses are one file per environment and
  take no suffix.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{- (custom_schema_name or target.schema) ~ warehouse_schema_suffix() -}}
{%- endmacro %}


{% macro warehouse_schema_suffix() -%}
    {%- if target.type == 'postgres' -%}
        {{- env_var('AIWF_WAREHOUSE_SCHEMA_SUFFIX', '') -}}
    {%- endif -%}
{%- endmacro %}
