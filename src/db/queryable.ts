/** The small slice of node-postgres the use cases need, so they can run on a Pool or a PoolClient. */
export interface QueryResultLike<R> {
  rows: R[];
  rowCount: number | null;
}

export interface Queryable {
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<QueryResultLike<R>>;
}
