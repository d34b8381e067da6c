-- 100,000 requests: 10 simulated configs x 20 sessions x 100 turns x 5 repeats
-- (the browser test and tests/bench/bench_report.sh); rows made by SQLite itself.
BEGIN;
INSERT INTO runs(id, started_at, status, tool_version, command_line) VALUES (1, '2025-01-01T00:00:00Z', 'ok', '0.1.0', 'bench');
WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < 9)
INSERT INTO configs(id, run_id, name, backend, model, simulated, status, mem_json)
SELECT i + 1, 1, 'cfg-' || i, 'sim', 'model-' || i, 1, 'ok',
       '{"source":"rss","baseline_bytes":4000000000,"bytes_per_token":70000,"budget_bytes":' || (14000000000 + i * 1000000000) ||
       ',"projected_oom_tokens":150000,"projected_oom_turn":99,"points":100,"r2":0.98}' FROM k;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999)
INSERT INTO requests(config_id, session, turn, repeat, cache, context_tokens_est, prompt_tokens, cached_tokens,
                     completion_tokens, ttft_ms, decode_tps, prefill_tps, e2e_ms, mem_peak_bytes, outcome, evidence,
                     in_flight, server_json)
SELECT 1 + i % 10, 'session-' || ((i / 10) % 20), (i / 200) % 100, i / 20000,
       CASE WHEN i % 7 = 0 THEN 'cold' ELSE 'warm' END,
       500 + ((i / 200) % 100) * 1300, 510 + ((i / 200) % 100) * 1300, ((i / 200) % 100) * 1200, 200,
       (100 + ((i / 200) % 100) * 20 + (i % 13)) * (1 + i % 10) * 0.5, 60 - ((i / 200) % 100) * 0.3 - (i % 10),
       2000 + (i % 97), 4000 + (i % 101), 4000000000 + ((i / 200) % 100) * 100000000 + (i % 10) * 50000000,
       'ok', NULL, 1, '{"timings":{"prompt_n":1}}'
FROM n;
COMMIT;
