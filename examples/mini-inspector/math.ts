/**
 * The little linear algebra the inspector needs, in plain arithmetic.
 * Matrices are 4x4, column-major (as glTF stores them): element (row r,
 * column c) is at index c * 4 + r.
 */
export type Vec3 = [number, number, number];
export type Quat = [number, number, number, number];
export type Mat4 = number[];

export function identity(): Mat4 {
  return [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
}

/** a * b: the transform that applies b first, then a. */
export function multiply(a: Mat4, b: Mat4): Mat4 {
  const out = new Array<number>(16).fill(0);
  for (let c = 0; c < 4; c++) {
    for (let r = 0; r < 4; r++) {
      let sum = 0;
      for (let k = 0; k < 4; k++) sum += (a[k * 4 + r] as number) * (b[c * 4 + k] as number);
      out[c * 4 + r] = sum;
    }
  }
  return out;
}

/** The matrix T * R * S of a glTF node's translation, rotation (unit quaternion x, y, z, w) and scale. */
export function composeTRS(t: readonly number[], q: readonly number[], s: readonly number[]): Mat4 {
  const [tx = 0, ty = 0, tz = 0] = t;
  const [x = 0, y = 0, z = 0, w = 1] = q;
  const [sx = 1, sy = 1, sz = 1] = s;
  const xx = x * x, yy = y * y, zz = z * z;
  const xy = x * y, xz = x * z, yz = y * z;
  const wx = w * x, wy = w * y, wz = w * z;
  return [
    (1 - 2 * (yy + zz)) * sx, 2 * (xy + wz) * sx, 2 * (xz - wy) * sx, 0,
    2 * (xy - wz) * sy, (1 - 2 * (xx + zz)) * sy, 2 * (yz + wx) * sy, 0,
    2 * (xz + wy) * sz, 2 * (yz - wx) * sz, (1 - 2 * (xx + yy)) * sz, 0,
    tx, ty, tz, 1,
  ];
}

/** m applied to the point p (w = 1; glTF node matrices are affine). */
export function transformPoint(m: Mat4, p: readonly number[]): Vec3 {
  const [x = 0, y = 0, z = 0] = p;
  const at = (i: number): number => m[i] as number;
  return [
    at(0) * x + at(4) * y + at(8) * z + at(12),
    at(1) * x + at(5) * y + at(9) * z + at(13),
    at(2) * x + at(6) * y + at(10) * z + at(14),
  ];
}

/** An axis-aligned box that grows to include points; empty until the first point. */
export class Bounds {
  readonly min: Vec3 = [Infinity, Infinity, Infinity];
  readonly max: Vec3 = [-Infinity, -Infinity, -Infinity];
  points = 0;

  add(p: readonly number[]): void {
    for (let i = 0; i < 3; i++) {
      const v = p[i] ?? 0;
      if (v < this.min[i]!) this.min[i] = v;
      if (v > this.max[i]!) this.max[i] = v;
    }
    this.points += 1;
  }

  get empty(): boolean {
    return this.points === 0;
  }
}
