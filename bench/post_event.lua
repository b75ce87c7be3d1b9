-- wrk script: POST one small JSON webhook body per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"url": "https://example.com/pricing", "user": "John", "email": "a@a.com", "plan": {"name": "pro", "seats": 5}}'
