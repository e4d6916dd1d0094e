# -*- test-case-name: tests.media.test_config -*-
import os

from twisted.trial.unittest import SynchronousTestCase

from mss.config import ConfigError
from mss.media import config

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


class MediaConfigTests(SynchronousTestCase):
    def test_shipped_file(self):
        c = config.load(os.path.join(ROOT, "etc", "mss-media.toml"))
        self.assertEqual(c["media"]["control"], "127.0.0.1:22222")
        self.assertEqual(c["media"]["bind"], "127.0.0.1")

    def test_switch_file_accepted(self):
        c = config.load(os.path.join(ROOT, "etc", "mss.toml"))
        self.assertEqual(c["media"]["rtp_ports"], "20000-29999")

    def test_errors_name_file_and_key(self):
        with self.assertRaises(ConfigError) as e:
            config.from_dict({"media": {"rtp_ports": "30000-20000"}}, "x.toml")
        self.assertEqual(e.exception.key, "media.rtp_ports")
        self.assertTrue(str(e.exception).startswith("x.toml: media.rtp_ports: "))
        with self.assertRaises(ConfigError) as e:
            config.from_dict({"media": {"colour": 1}}, "x.toml")
        self.assertEqual(str(e.exception), "x.toml: media.colour: unknown key")
        with self.assertRaises(ConfigError) as e:
            config.from_dict({"media": {"bind": "nowhere"}}, "x.toml")
        self.assertEqual(e.exception.key, "media.bind")
        with self.assertRaises(ConfigError):
            config.from_dict({"mediaa": {}}, "x.toml")
        with self.assertRaises(ConfigError):
            config.load("/nonexistent/mss-media.toml")
