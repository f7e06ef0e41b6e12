export { Bitmap } from './bitmap.js';
export { subtractRanges } from './ranges.js';
export { AddressBook, CHUNK_SIZE, type ChunkLoader } from './book.js';
export { openAddressBook, allocateAddress, releaseAddress, allocateVni, type AllocationRequest } from './allocate.js';
