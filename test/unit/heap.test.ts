import { sizeHeapForDaemon } from '../../controller/heap';

describe('sizeHeapForDaemon', () => {
  test.each([['--max-old-space-size=64'], ['--max-semi-space-size=4'], ['--max_semi_space_size=4'], ['--optimize-for-size'], ['--heap-growing-percent=20']])(
    'sets nothing when node was started with %s (the command line wins)', (flag) => {
      expect(sizeHeapForDaemon(['--trace-gc', flag])).toEqual([]);
    });
});
