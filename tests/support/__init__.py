"""Helpers of the tests, one package for both sides: the local stack and settings (``stack``), the fake video
platform (``fakeplatform``), crawl, spread, Kibana and language fixtures, the console and its browser, the light
worker suite, C2PA signing, checkpoint twins, deployment tools. Test modules import ``support.<module>``; the
folder ``tests/`` is on the path (pytest's rootdir conftest), and benches add it themselves."""
