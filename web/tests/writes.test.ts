import { describe, expect, it } from 'vitest';
import { write, writesSettled } from '../src/api/writes';

describe('writesSettled', () => {
  it('waits for every write on its way, failed ones too', async () => {
    const order: string[] = [];
    let finish!: () => void;
    const slow = new Promise<void>((resolve) => {
      finish = resolve;
    }).then(() => order.push('write'));
    void write(slow);
    void write(Promise.reject(new Error('412'))).catch(() => order.push('failed write'));
    const read = writesSettled().then(() => order.push('read'));
    finish();
    await read;
    expect(order).toEqual(['failed write', 'write', 'read']);
  });

  it('does not wait when nothing is pending', async () => {
    await expect(writesSettled()).resolves.toBeUndefined();
  });
});
