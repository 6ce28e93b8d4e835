"""Single-producer/single-consumer ring of audio blocks between the engine and the JACK callback.

Why it is safe without locks: there is exactly one producer thread (it alone stores ``_write_index``)
and exactly one consumer thread (it alone stores ``_read_index`` and ``_part``). Both indices only
grow. Storing a Python int attribute is atomic under the GIL, and every GIL hand-over is a full memory
barrier, so when the consumer sees ``_write_index == w + 1`` the producer's copy into slot ``w`` has
finished (the producer publishes the index only after ``np.copyto`` returned), and when the producer sees
``_read_index == r + 1`` the consumer has finished reading slot ``r``. The producer never touches a slot
that is still readable, and the consumer never reads a slot that is not yet published.

Python ints do not overflow, so ``write - read`` is always the exact fill level.
"""

from collections.abc import Sequence

import numpy as np

from latentd.realtime import realtime


class BlockRing:
    """A preallocated ring of ``n_blocks`` blocks of ``[n_channels, blocksize]`` float32 frames.

    The producer (the engine worker) calls :meth:`write`; the consumer (the JACK process callback) calls
    :meth:`read_into`. Nothing else may call either side concurrently.

    The consumer reads ``read_frames`` frames per call, by default one whole block. When the JACK period
    is a divisor of ``blocksize``, :meth:`set_read_frames` makes each call read the next part of the
    current block; the block is released to the producer after its last part was read.

    A consumer that writes whole blocks elsewhere (the recorder's writer thread) uses :meth:`peek` and
    :meth:`advance` instead of :meth:`read_into`; with ``tagged`` each block carries an integer (the
    recorder stores the engine block index, so gaps show).

    Attributes:
        underruns: Number of :meth:`read_into` calls that found the ring empty (and output silence).
    """

    def __init__(
        self,
        n_blocks: int,
        blocksize: int,
        n_channels: int,
        *,
        buffer: np.ndarray | None = None,
        tagged: bool = False,
    ) -> None:
        """Allocate the ring.

        Args:
            n_blocks: Capacity in blocks (at least 2, so the producer can fill one while one plays).
            blocksize: Frames per block.
            n_channels: Channels per block (one per speaker).
            buffer: Storage to use instead of a new array (shared memory), float32
                ``[n_blocks, n_channels, blocksize]``.
            tagged: Keep an integer tag per block (:meth:`write`'s ``tag``, returned by :meth:`peek`);
                tags live in this process's memory.

        Raises:
            ValueError: If a size is out of range.
        """
        for name, value, low in (
            ("n_blocks", n_blocks, 2),
            ("blocksize", blocksize, 1),
            ("n_channels", n_channels, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"BlockRing: {name} must be an integer >= {low}, got {value!r}")
        self._n_blocks = n_blocks
        self._blocksize = blocksize
        self._n_channels = n_channels
        shape = (n_blocks, n_channels, blocksize)
        if buffer is not None and (buffer.shape != shape or buffer.dtype != np.float32):
            raise ValueError(
                f"BlockRing: buffer must be float32 {list(shape)}, got {buffer.dtype} {buffer.shape}"
            )
        self._buf = np.zeros(shape, dtype=np.float32) if buffer is None else buffer
        self._tags = np.zeros(n_blocks, dtype=np.int64) if tagged else None
        self._init_indices()
        self._part = 0
        self._read_frames = blocksize
        self._n_parts = 1
        self._views: list[list[list[np.ndarray]]] = []
        self.set_read_frames(blocksize)

    def _init_indices(self) -> None:
        self._write_index = 0
        self._read_index = 0
        self.underruns = 0

    @property
    def n_blocks(self) -> int:
        """Capacity in blocks."""
        return self._n_blocks

    @property
    def blocksize(self) -> int:
        """Frames per block."""
        return self._blocksize

    @property
    def n_channels(self) -> int:
        """Channels per block."""
        return self._n_channels

    @property
    def read_frames(self) -> int:
        """Frames per channel that each :meth:`read_into` call copies."""
        return self._read_frames

    def set_read_frames(self, n_frames: int) -> None:
        """Set how many frames :meth:`read_into` copies per call (not real-time: builds views).

        Call it only while no consumer is reading (before the JACK client is activated, or from JACK's
        blocksize callback, during which JACK does not run the process callback). A block that was partly
        read is dropped.

        Args:
            n_frames: Frames per call; must divide ``blocksize``.

        Raises:
            ValueError: If ``n_frames`` does not divide ``blocksize``.
        """
        if not isinstance(n_frames, int) or n_frames < 1 or self._blocksize % n_frames:
            raise ValueError(
                f"BlockRing: read size {n_frames!r} frames must divide the ring blocksize {self._blocksize}"
            )
        n_parts = self._blocksize // n_frames
        # Views are built once here so that read_into never creates one (a view is an allocation).
        self._views = [
            [
                [self._buf[b, c, p * n_frames : (p + 1) * n_frames] for p in range(n_parts)]
                for c in range(self._n_channels)
            ]
            for b in range(self._n_blocks)
        ]
        if self._part:
            self._part = 0
            self._read_index += 1
        self._read_frames = n_frames
        self._n_parts = n_parts

    @property
    def blocks_read(self) -> int:
        """Blocks the consumer has finished reading: the index of the block it reads now."""
        return self._read_index

    def readable(self) -> int:
        """Blocks written and not yet fully read."""
        return self._write_index - self._read_index

    def writable(self) -> int:
        """Blocks the producer can write now without the ring being full."""
        return self._n_blocks - (self._write_index - self._read_index)

    def write(self, block: np.ndarray, tag: int = 0) -> bool:
        """Copy one block in (producer side). Never blocks, allocates nothing.

        Args:
            block: ``[n_channels, blocksize]`` audio; any real float dtype (cast to float32).
            tag: Stored with the block when the ring is ``tagged``.

        Returns:
            True if the block was stored, False if the ring was full (the block is dropped).

        Raises:
            ValueError: If the block has the wrong shape.
        """
        if block.shape != (self._n_channels, self._blocksize):
            raise ValueError(
                f"BlockRing.write: block shape {tuple(block.shape)} does not match the ring's "
                f"[n_channels, blocksize] = [{self._n_channels}, {self._blocksize}]"
            )
        w = self._write_index
        if w - self._read_index >= self._n_blocks:
            return False
        np.copyto(self._buf[w % self._n_blocks], block, casting="same_kind")
        if self._tags is not None:
            self._tags[w % self._n_blocks] = tag
        # Publish only after the copy is complete (see the module docstring).
        self._write_index = w + 1
        return True

    @realtime
    def read_into(self, outs: Sequence[np.ndarray]) -> bool:
        """Copy the next ``read_frames`` frames of each channel into ``outs`` (consumer side, real-time).

        Allocates nothing that outlives the call; no locks, no logging. ``outs`` must hold ``n_channels``
        float32 arrays of ``read_frames`` frames (the JACK port buffers); extra arrays are left untouched.

        Args:
            outs: One output buffer per channel.

        Returns:
            True if audio was copied; False on underrun, in which case ``outs`` are zero-filled and
            ``underruns`` is incremented.
        """
        r = self._read_index
        part = self._part
        if part == 0 and self._write_index == r:
            for out in outs:
                out.fill(0.0)
            self.underruns += 1
            return False
        for out, parts in zip(outs, self._views[r % self._n_blocks], strict=False):
            np.copyto(out, parts[part])
        part += 1
        if part == self._n_parts:
            self._part = 0
            # Release the slot to the producer only after its last part was copied.
            self._read_index = r + 1
        else:
            self._part = part
        return True

    def peek(self) -> tuple[int, np.ndarray]:
        """The oldest unread block (consumer side): its tag (0 if untagged) and a view of it.

        The view is ``[n_channels, blocksize]``.

        It stays valid until :meth:`advance`. Call it only when :meth:`readable` is not 0, and do not
        mix it with :meth:`read_into`.
        """
        slot = self._read_index % self._n_blocks
        tag = 0 if self._tags is None else int(self._tags[slot])
        return tag, self._buf[slot]

    def advance(self) -> None:
        """Release the block :meth:`peek` returned to the producer (consumer side)."""
        self._read_index += 1
