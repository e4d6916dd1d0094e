# -*- test-case-name: tests.media.test_ports -*-
from twisted.trial.unittest import SynchronousTestCase

from mss.media.ports import PortAllocator, PortsExhausted, parse_range


class PortAllocatorTests(SynchronousTestCase):
    def test_even_pairs_round_robin(self):
        a = PortAllocator(20001, 20009)       # odd start rounded up: 20002..20009
        self.assertEqual(a.capacity, 4)
        got = [a.allocate() for _ in range(4)]
        self.assertEqual(got, [20002, 20004, 20006, 20008])
        with self.assertRaises(PortsExhausted):
            a.allocate()
        a.release(20004)
        a.release(20002)
        self.assertEqual(a.allocate(), 20002)  # round robin continues from the start
        self.assertEqual(a.allocate(), 20004)

    def test_freed_pair_not_reused_at_once(self):
        a = PortAllocator(20000, 20007)
        first = a.allocate()
        a.release(first)
        self.assertNotEqual(a.allocate(), first)

    def test_split_and_parse(self):
        self.assertEqual(parse_range("20000-29999"), (20000, 29999))
        self.assertEqual(PortAllocator(20000, 20011).split(2), [(20000, 20005), (20006, 20011)])
        with self.assertRaises(ValueError):
            PortAllocator(20000, 20001).split(2)
        with self.assertRaises(ValueError):
            PortAllocator(20000, 20000)
