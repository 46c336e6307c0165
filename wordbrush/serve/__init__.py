"""The OpenAI-compatible images server and its web page (`wordbrush serve`).

    from wordbrush.serve.app import create_app
    from wordbrush.serve.settings import ServeSettings
    app = create_app(ServeSettings(model="shapes"))       # an ASGI app: uvicorn.run(app)

This package's __init__ imports nothing, so that `wordbrush serve --help` (cli/serve.py) starts without
fastapi or torch.
"""
