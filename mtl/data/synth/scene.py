"""Random street layouts: the camera, the lighting and every part of one scene.

The main street runs along +z with its centre line at x = 0; right-hand traffic drives away from the
camera in the lanes with x > 0. A scene has a style (city, residential, suburb) that sets building
heights, gaps, yards and vegetation; everything else (lanes, parking, an intersection, a tram line,
traffic, people, street furniture) is sampled with probabilities chosen so that class frequencies
look like a city street while the rare classes (rider, motorcycle, train) still show up in most
few-dozen-image splits. Probabilities marked RARE_CLASSES were raised so that traffic light, rider,
train, motorcycle and bicycle each cover more than 0.1 % of the labelled pixels and show up in more
images (before/after frequencies in docs/DATASET.md, "The rare classes").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtl.data.synth import objects as obj
from mtl.data.synth.camera import Camera
from mtl.data.synth.ground import Ground, LaneLine
from mtl.data.synth.materials import Grass, Paving, srgb
from mtl.data.synth.parts import Part, Placement
from mtl.data.synth.shapes import Box

FAR = 450.0  # metres of street built ahead; beyond 300 m depth is invalid anyway
STYLES = ("city", "residential", "suburb")


@dataclass
class Light:
    sun_dir: np.ndarray  # unit vector towards the sun
    sun: np.ndarray  # RGB irradiance of the sun (0 when overcast)
    ambient: np.ndarray  # RGB sky light from the upper hemisphere
    horizon: np.ndarray  # sky colour at the horizon (also the haze colour)
    zenith: np.ndarray
    clouds: float  # 0 clear … 1 covered
    haze: float  # metres at which 63 % of the colour is haze
    exposure: float  # relative exposure (1 = neutral)


@dataclass
class Bonnet:
    height: float  # fraction of the image height covered at the centre
    color: np.ndarray


@dataclass
class Scene:
    camera: Camera
    light: Light
    ground: Ground
    parts: list[Part]
    bonnet: Bonnet | None


@dataclass
class Street:
    """Cross-section of the street, shared by the placement functions."""

    road_half: float
    lane_width: float
    lanes: list[tuple[float, int]]  # (centre x, direction +1 away / -1 towards the camera)
    parking: bool
    strip: dict[int, float]  # side → width of the grass strip between kerb and sidewalk
    walk: dict[int, float]  # side → sidewalk width
    setback: dict[int, float]  # side → yard depth between sidewalk and buildings
    kerb: float
    cross_z: float | None
    cross_half: float

    def walk_inner(self, side: int) -> float:
        return self.road_half + self.strip[side]

    def walk_outer(self, side: int) -> float:
        return self.walk_inner(side) + self.walk[side]

    def facade(self, side: int) -> float:
        return self.walk_outer(side) + self.setback[side]

    def in_cross(self, z: float, margin: float = 0.0) -> bool:
        return self.cross_z is not None and abs(z - self.cross_z) < self.cross_half + margin


def build_scene(rng: np.random.Generator, width: int, height: int) -> Scene:
    style = STYLES[rng.choice(3, p=[0.5, 0.3, 0.2])]
    street = _street(rng, style)
    lane_x = [x for x, d in street.lanes if d > 0] or [street.lanes[0][0]]
    cam_x = float(rng.choice(lane_x)) + rng.normal(0, 0.2)
    camera = Camera.create(
        width, height,
        hfov_deg=rng.uniform(60, 90),
        position=np.array([cam_x, rng.uniform(1.2, 1.8), 0.0]),
        yaw=np.radians(rng.uniform(-6, 6)),
        pitch=np.radians(rng.uniform(-4, 2)),
        roll=np.radians(rng.uniform(-1.5, 1.5)),
    )
    rails = []
    tram_lane = None
    if rng.random() < (0.4 if style == "city" else 0.25):  # RARE_CLASSES: was 0.3 / 0.15
        tram_lane = street.lanes[int(rng.integers(len(street.lanes)))]
        rails.append(tram_lane[0])
    ground = _ground(rng, street, rails)
    parts: list[Part] = []
    parts += _sidewalks(rng, street)
    parts += _buildings(rng, street, style)
    parts += _yards(rng, street, style)
    parts += _vegetation(rng, street, style)
    parts += _furniture(rng, street)
    parts += _traffic(rng, street, style, cam_x, tram_lane)
    parts += _people(rng, street, style)
    bonnet = None
    if rng.random() < 0.3:
        bonnet = Bonnet(rng.uniform(0.06, 0.14), srgb(tuple(int(c) for c in rng.choice(obj.CAR_PAINT))))
    return Scene(camera, _light(rng), ground, parts, bonnet)


def _street(rng: np.random.Generator, style: str) -> Street:
    lane_width = rng.uniform(2.9, 3.5)
    per_dir = 1 if style == "suburb" or rng.random() < 0.5 else 2
    one_way = rng.random() < 0.15
    n = per_dir * (1 if one_way else 2)
    parking = rng.random() < {"city": 0.6, "residential": 0.7, "suburb": 0.3}[style]
    lanes_half = n * lane_width / 2
    road_half = lanes_half + (2.2 if parking else 0.3)
    lanes = [(-lanes_half + (k + 0.5) * lane_width, 1 if one_way or k >= n // 2 else -1) for k in range(n)]
    strip, walk, setback = {}, {}, {}
    for side in (-1, 1):
        strip[side] = rng.uniform(1.0, 3.0) if rng.random() < {"city": 0.15, "residential": 0.35, "suburb": 0.6}[style] else 0.0
        walk[side] = rng.uniform(2.5, 5.5) if style == "city" else rng.uniform(1.5, 3.0)
        if style == "city":
            setback[side] = rng.uniform(2, 6) if rng.random() < 0.2 else 0.0
        else:
            setback[side] = rng.uniform(0, 6) if style == "residential" else rng.uniform(4, 12)
    cross_z, cross_half = None, 0.0
    if rng.random() < 0.55:  # RARE_CLASSES: was 0.45, at 25–90 m
        cross_z, cross_half = rng.uniform(18, 80), rng.uniform(3.5, 7.5)
    return Street(road_half, lane_width, lanes, parking, strip, walk, setback, rng.uniform(0.1, 0.17), cross_z, cross_half)


def _ground(rng: np.random.Generator, street: Street, rails: list[float]) -> Ground:
    lines = []
    xs = sorted(x for x, _ in street.lanes)
    for a, b in zip(xs[:-1], xs[1:]):
        middle = (a + b) / 2
        two_way = [d for x, d in street.lanes if x in (a, b)]
        centre = two_way[0] != two_way[1]
        lines.append(LaneLine(middle, 0.0 if centre and rng.random() < 0.5 else 3.0, double=centre and rng.random() < 0.4))
    edge = xs[0] - street.lane_width / 2
    for x in (edge, -edge):
        if rng.random() < 0.6:
            lines.append(LaneLine(x, 0.0))
    return Ground(
        road_half=street.road_half,
        lane_width=street.lane_width,
        cross_z=street.cross_z,
        cross_half=street.cross_half,
        lines=lines,
        rails=rails,
        asphalt=srgb((95, 95, 98)) * rng.uniform(0.7, 1.15),
        green=srgb((85, 120, 45)) * rng.uniform(0.8, 1.1),
        dry=srgb((150, 140, 85)) * rng.uniform(0.8, 1.1),
        offset=rng.uniform(0, 256),
    )


def _z_spans(street: Street, start: float, end: float, margin: float) -> list[tuple[float, float]]:
    """[start, end] minus the cross street widened by ``margin`` on both sides."""
    if street.cross_z is None:
        return [(start, end)]
    lo, hi = street.cross_z - street.cross_half - margin, street.cross_z + street.cross_half + margin
    return [(a, b) for a, b in ((start, min(end, lo)), (max(start, hi), end)) if b > a]


def _chunks(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Cut long ground-level strips into pieces whose length grows with distance: one strip from
    the camera to the horizon would have a screen box covering half the image."""
    edges = np.array([-10.0, 5.0, 15.0, 35.0, 80.0, 180.0, FAR])
    out = []
    for a, b in spans:
        cuts = np.concatenate([[a], edges[(edges > a) & (edges < b)], [b]])
        out += list(zip(cuts[:-1], cuts[1:]))
    return out


def _sidewalks(rng: np.random.Generator, street: Street) -> list[Part]:
    paving = Paving(rng)
    parts = []
    k = street.kerb
    for side in (-1, 1):
        x0, x1 = street.walk_inner(side), street.walk_outer(side) + street.setback[side] * (street.setback[side] < 1.0)
        for z0, z1 in _chunks(_z_spans(street, -10.0, FAR, 0.0)):
            parts.append(Part(Box((side * (x0 + x1) / 2, k / 2, (z0 + z1) / 2), (x1 - x0, k, z1 - z0)), obj.SIDEWALK, paving,
                              casts_shadow=False))
        if street.cross_z is not None:  # sidewalks along the cross street, both corners
            for zs in (-1, 1):
                z_edge = street.cross_z + zs * street.cross_half
                zc = z_edge + zs * street.walk[side] / 2
                length = 120.0
                parts.append(Part(Box((side * (street.road_half + length / 2), k / 2, zc), (length, k, street.walk[side])),
                                  obj.SIDEWALK, paving, casts_shadow=False))
    return parts


def _buildings(rng: np.random.Generator, street: Street, style: str) -> list[Part]:
    heights = {"city": (10, 32), "residential": (7, 18), "suburb": (4.5, 9)}[style]
    gap_p = {"city": 0.1, "residential": 0.3, "suburb": 0.55}[style]
    parts: list[Part] = []
    for side in (-1, 1):
        front = street.facade(side)
        margin = street.walk[side] + street.setback[side]
        for z0, z1 in _z_spans(street, -40.0, FAR, margin):
            z = z0
            while z < z1:
                width = min(rng.uniform(8, 30) if style != "suburb" else rng.uniform(9, 16), z1 - z)
                if width < 4:
                    break
                if rng.random() < gap_p:
                    gap = rng.uniform(4, 15)
                    parts += _gap_filler(rng, street, side, z + min(gap, z1 - z) / 2, min(gap, z1 - z), style)
                    z += gap
                    continue
                h = rng.uniform(*heights)
                depth = rng.uniform(12, 25)
                corner = street.cross_z is not None and (abs(z - (street.cross_z + street.cross_half + margin)) < 1
                                                        or abs(z + width - (street.cross_z - street.cross_half - margin)) < 1)
                if corner:
                    depth = rng.uniform(40, 90)
                parts.append(obj.building(rng, (side * (front + depth / 2), h / 2, z + width / 2), (depth, h, width)))
                z += width
        for _ in range(int(rng.integers(0, 5))):  # taller blocks further back break the roof line
            h = rng.uniform(heights[1], heights[1] * 2.5)
            x = side * (front + rng.uniform(30, 120))
            parts.append(obj.building(rng, (x, h / 2, rng.uniform(40, 350)), (rng.uniform(15, 40), h, rng.uniform(15, 40))))
    if rng.random() < 0.4:  # the street ends at a block across it
        z_end = rng.uniform(120, 280)
        h = rng.uniform(*heights) * 1.3
        parts.append(obj.building(rng, (0.0, h / 2, z_end + 10), (200.0, h, 20.0)))
    return parts


def _gap_filler(rng: np.random.Generator, street: Street, side: int, zc: float, length: float, style: str) -> list[Part]:
    """What shows between two buildings: a wall or fence on the sidewalk edge, trees, a house further back."""
    x_edge = side * (street.walk_outer(side) + 0.15)
    parts: list[Part] = []
    pick = rng.random()
    if pick < 0.4:
        h = rng.uniform(1.5, 3.0)
        parts.append(obj.wall(rng, (x_edge, h / 2, zc), (0.3, h, length)))
    elif pick < 0.7:
        h = rng.uniform(1.2, 2.2)
        parts.append(obj.fence(rng, (x_edge, h / 2, zc), (0.06, h, length)))
    for _ in range(int(rng.integers(0, 3))):
        x = side * (street.facade(side) + rng.uniform(2, 10))
        parts += obj.tree(rng, Placement(x, 0, zc + rng.uniform(-length / 3, length / 3), 0.0))
    if rng.random() < 0.6:
        h = rng.uniform(6, 20)
        parts.append(obj.building(rng, (side * (street.facade(side) + rng.uniform(15, 30)), h / 2, zc), (12.0, h, length + 10)))
    return parts


def _yards(rng: np.random.Generator, street: Street, style: str) -> list[Part]:
    """Front yards (grass ground) and their boundary: hedge, low wall or fence on the sidewalk edge."""
    parts: list[Part] = []
    for side in (-1, 1):
        if street.setback[side] < 1.0:
            continue
        x_edge = side * (street.walk_outer(side) + 0.2)
        for z0, z1 in _z_spans(street, -10.0, 200.0, street.walk[side]):
            z = z0
            while z < z1:
                length = min(rng.uniform(8, 25), z1 - z)
                pick = rng.random()
                zc = z + length / 2
                if pick < 0.3:
                    h = rng.uniform(0.6, 1.5)
                    parts.append(obj.wall(rng, (x_edge, h / 2, zc), (0.3, h, length)))
                elif pick < 0.55:
                    h = rng.uniform(1.0, 1.8)
                    parts.append(obj.fence(rng, (x_edge, h / 2, zc), (0.05, h, length)))
                elif pick < 0.8:
                    h = rng.uniform(0.9, 2.0)
                    parts.append(obj.hedge(rng, (x_edge, h / 2, zc), (0.8, h, length)))
                for _ in range(int(rng.poisson(0.8 if style == "suburb" else 0.4))):
                    x = side * (street.walk_outer(side) + rng.uniform(1.0, street.setback[side]))
                    parts += obj.bush(rng, Placement(x, 0, rng.uniform(z, z + length), 0.0))
                z += length
    return parts


def _vegetation(rng: np.random.Generator, street: Street, style: str) -> list[Part]:
    """Tree rows along the kerb (or in the grass strip) and trees in yards."""
    parts: list[Part] = []
    p_row = {"city": 0.45, "residential": 0.7, "suburb": 0.8}[style]
    for side in (-1, 1):
        if street.strip[side] > 0:
            # grass strip between road and sidewalk: a raised terrain box with its own kerb
            x0, x1 = street.road_half, street.walk_inner(side)
            grass = Grass(rng)
            for z0, z1 in _chunks(_z_spans(street, -10.0, FAR, 0.0)):
                parts.append(Part(Box((side * (x0 + x1) / 2, street.kerb / 2, (z0 + z1) / 2), (x1 - x0, street.kerb, z1 - z0)),
                                  obj.TERRAIN, grass, casts_shadow=False))
        if rng.random() < p_row:
            x = side * (street.road_half + (street.strip[side] / 2 if street.strip[side] else 0.9))
            spacing = rng.uniform(7, 15)
            scale = rng.uniform(0.8, 1.4)
            for z in np.arange(rng.uniform(-5, 5), 130, spacing):
                if not street.in_cross(z, street.walk[side] + 1):
                    parts += obj.tree(rng, Placement(x, street.kerb, z + rng.normal(0, 0.5), 0.0), scale)
        if street.setback[side] > 3:
            for _ in range(int(rng.poisson(4))):
                x = side * (street.walk_outer(side) + rng.uniform(2, street.setback[side]))
                z = rng.uniform(0, 150)
                if not street.in_cross(z, 5):
                    parts += obj.tree(rng, Placement(x, 0, z, 0.0), rng.uniform(0.8, 1.5))
    return parts


def _furniture(rng: np.random.Generator, street: Street) -> list[Part]:
    """Lamp posts, sign posts and traffic lights on the kerb side of the sidewalks."""
    parts: list[Part] = []
    for side in (-1, 1):
        x = side * (street.walk_inner(side) + 0.45)
        spacing = rng.uniform(20, 40)
        for z in np.arange(rng.uniform(0, spacing), 200, spacing):
            if not street.in_cross(z, street.walk[side]):
                parts += obj.street_lamp(rng, Placement(x, street.kerb, z, 0.0), -side * rng.uniform(1.0, 2.5))
        for _ in range(int(rng.poisson(1.5))):
            z = rng.uniform(4, 90)
            if not street.in_cross(z, street.walk[side]):
                facing = 0.0 if side > 0 or rng.random() < 0.5 else np.pi
                parts += obj.traffic_sign(rng, Placement(x, street.kerb, z, facing))
    if street.cross_z is not None:
        near, far = street.cross_z - street.cross_half - 1.0, street.cross_z + street.cross_half + 1.0
        for side in (-1, 1):
            x = side * (street.walk_inner(side) + 0.4)
            for z in (near, far):
                if rng.random() < 0.9:
                    parts += obj.traffic_light(rng, Placement(x, street.kerb, z, 0.0))
        if rng.random() < 0.7:
            reach = -rng.uniform(3.0, max(3.5, street.road_half))
            parts += obj.traffic_light(rng, Placement(street.walk_inner(1) + 0.4, street.kerb, far, 0.0), overhang=reach)
    elif rng.random() < 0.7:  # a pedestrian crossing with signals mid-block (RARE_CLASSES: was 0.5, 20–70 m)
        z = rng.uniform(12, 60)
        for side in (-1, 1):
            parts += obj.traffic_light(rng, Placement(side * (street.walk_inner(side) + 0.4), street.kerb, z, 0.0))
    return parts


def _traffic(rng: np.random.Generator, street: Street, style: str, cam_x: float, tram_lane) -> list[Part]:
    """Moving vehicles in the lanes, parked cars, cyclists and motorcyclists, an optional tram."""
    parts: list[Part] = []
    heavy = {"city": (0.04, 0.04), "residential": (0.03, 0.02), "suburb": (0.03, 0.01)}[style]
    p_motorbike = 0.05
    builders = {"truck": (obj.truck, 10.0), "bus": (obj.bus, 13.0), "motorcycle": (None, 2.5), "car": (obj.car, 5.0)}
    # motorcycles are rare in the lane sampling alone; a third of the scenes get one at a lane's head
    biker_lane = int(rng.integers(len(street.lanes))) if rng.random() < 0.35 else -1  # RARE_CLASSES: was 0.25
    for lane, (x, direction) in enumerate(street.lanes):
        ego = abs(x - cam_x) < street.lane_width / 2
        yaw = 0.0 if direction > 0 else np.pi
        z = rng.uniform(8, 25) if ego else rng.uniform(-6, 20)  # rear end of the first vehicle
        if tram_lane is not None and x == tram_lane[0]:  # the tram extends away from its placement
            start = rng.uniform(15, 60) if direction > 0 else rng.uniform(40, 100)
            parts += obj.tram(rng, Placement(x, 0, start, yaw))
            continue
        first = True
        while z < 160:
            pick = rng.random()
            kind = "truck" if pick < heavy[0] else "bus" if pick < sum(heavy) else "motorcycle" if pick < sum(heavy) + p_motorbike else "car"
            if lane == biker_lane and first:
                kind = "motorcycle"
            first = False
            build, length = builders[kind]
            place = Placement(x + rng.normal(0, 0.2), 0, z + length / 2, yaw + rng.normal(0, 0.02))
            parts += obj.rider_on(rng, place, "motorcycle") if build is None else build(rng, place)
            z += length + rng.exponential(14.0) + 3.0
    if street.parking:
        for side in (-1, 1):
            x = side * (street.road_half - 1.1)
            z = rng.uniform(-2, 8)
            while z < 140:
                if not street.in_cross(z, 6) and rng.random() < 0.65:
                    yaw = (0.0 if rng.random() < 0.7 else np.pi) + rng.normal(0, 0.03)
                    if rng.random() < 0.06:  # RARE_CLASSES: a motorcycle parked across the space (2.1 m of 2.2)
                        parts += obj.motorcycle(rng, Placement(x, 0, z, np.pi / 2 + rng.normal(0, 0.15)))
                    else:
                        parts += obj.car(rng, Placement(x, 0, z, yaw))
                z += rng.uniform(5.2, 7.0)
    for _ in range(int(rng.random() < 0.65) * int(rng.integers(1, 4))):  # cyclists (RARE_CLASSES: was 0.5, 1–2)
        side = 1 if rng.random() < 0.75 else -1
        x = side * (street.road_half - (2.8 if street.parking else 0.8))
        parts += obj.rider_on(rng, Placement(x, 0, rng.uniform(5, 60), 0.0 if side > 0 else np.pi), "bicycle")
    for _ in range(int(rng.random() < 0.6) * int(rng.integers(1, 3))):  # parked bicycles on a sidewalk, a rack's row
        side = int(rng.choice([-1, 1]))  # RARE_CLASSES: was one row with p 0.35, 1–4 bicycles
        x = side * (street.walk_outer(side) - 0.6)
        z0 = rng.uniform(3, 40)
        for k in range(int(rng.integers(2, 7))):
            parts += obj.bicycle(rng, Placement(x, street.kerb, z0 + 0.7 * k, np.pi / 2 + rng.normal(0, 0.1)))
    return parts


def _people(rng: np.random.Generator, street: Street, style: str) -> list[Part]:
    parts: list[Part] = []
    count = int(rng.poisson({"city": 10, "residential": 5, "suburb": 3}[style]))
    for _ in range(count):
        side = int(rng.choice([-1, 1]))
        x = side * rng.uniform(street.walk_inner(side) + 0.4, street.walk_outer(side) - 0.3)
        z = 3.0 + min(rng.exponential(20.0), 80.0)
        yaw = (0.0 if rng.random() < 0.5 else np.pi) + rng.normal(0, 0.3)
        for k in range(1 if rng.random() < 0.7 else int(rng.integers(2, 4))):  # some walk in groups
            parts += obj.person(rng, Placement(x + side * 0.6 * k, street.kerb, z + rng.normal(0, 0.3), yaw))
    if street.cross_z is not None and rng.random() < 0.5:
        z = street.cross_z - street.cross_half - 3.0
        for _ in range(int(rng.integers(1, 5))):
            x = rng.uniform(-street.road_half, street.road_half)
            parts += obj.person(rng, Placement(x, 0, z + rng.normal(0, 0.8), np.pi / 2 * rng.choice([-1, 1])))
    return parts


def _light(rng: np.random.Generator) -> Light:
    if rng.random() < 0.25:  # overcast: no direct sun, bright grey sky
        grey = rng.uniform(0.55, 0.8)
        return Light(
            sun_dir=np.array([0.0, 1.0, 0.0]),
            sun=np.zeros(3),
            ambient=np.array([1.0, 1.0, 1.02]) * rng.uniform(1.3, 1.7),
            horizon=np.array([grey, grey, grey * 1.03]),
            zenith=np.array([grey, grey, grey * 1.05]) * 0.8,
            clouds=1.0,
            haze=rng.uniform(150, 500),
            exposure=rng.uniform(0.85, 1.15),
        )
    elevation, azimuth = np.radians(rng.uniform(20, 65)), rng.uniform(0, 2 * np.pi)
    sun_dir = np.array([np.cos(elevation) * np.sin(azimuth), np.sin(elevation), np.cos(elevation) * np.cos(azimuth)])
    warm = rng.uniform(0.0, 0.15)
    return Light(
        sun_dir=sun_dir,
        sun=np.array([1.0, 0.96 - warm / 2, 0.9 - warm]) * rng.uniform(2.6, 3.4),
        ambient=np.array([0.55, 0.65, 0.85]) * rng.uniform(0.6, 0.85),
        horizon=np.array([0.62, 0.72, 0.86]) * rng.uniform(0.85, 1.05),
        zenith=np.array([0.12, 0.27, 0.65]) * rng.uniform(0.8, 1.1),
        clouds=rng.uniform(0.0, 0.6),
        haze=rng.uniform(300, 1200),
        exposure=rng.uniform(0.85, 1.15),
    )
