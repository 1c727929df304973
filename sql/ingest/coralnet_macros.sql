-- Strict integer parsing for CoralNet CSV values read as text. DuckDB's own string-to-integer cast
-- accepts '82.5' (rounds), '1e3', '0x52' and '8_2'; people's typos must fail instead. Surrounding
-- spaces and leading zeros are allowed. The common case (the value prints back as itself) skips the
-- regex. A bad value raises an error carrying the file, column and value (separated by U+001F) that
-- the adapter turns into a one-line message with the line number.
CREATE OR REPLACE TEMP MACRO coralnet_uint(v, max_value, column_name, file) AS (
    CASE
        WHEN CAST(TRY_CAST(v AS UBIGINT) AS VARCHAR) = v AND TRY_CAST(v AS UBIGINT) <= max_value
        THEN TRY_CAST(v AS UBIGINT)
        WHEN regexp_full_match(v, '[ \t]*[0-9]{1,19}[ \t]*') AND TRY_CAST(trim(v) AS UBIGINT) <= max_value
        THEN TRY_CAST(trim(v) AS UBIGINT)
        ELSE error('coralnet-bad-value' || chr(31) || file || chr(31) || column_name || chr(31) || coalesce(v, ''))
    END
)
